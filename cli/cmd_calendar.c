/* cmd_calendar.c: claimctl calendar ... (being written) */
#include <stdio.h>

#include "cmd.h"

int cf_cmd_calendar(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "claimctl: %s: not yet available\n", argv[0]);
    return CF_EXIT_USAGE;
}
