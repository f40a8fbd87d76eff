/* cmd_workflow.c: claimctl workflow ... (being written) */
#include <stdio.h>

#include "cmd.h"

int cf_cmd_workflow(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "claimctl: %s: not yet available\n", argv[0]);
    return CF_EXIT_USAGE;
}
