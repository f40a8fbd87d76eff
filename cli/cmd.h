/* cmd.h: claimctl's commands.  Each takes the arguments after its own name
 * (argv[0] is the command name) and returns the process exit code:
 *   0 success, 1 refused (invalid input, or the daemon said no),
 *   2 usage error (usage printed), 3 cannot reach the daemon. */
#ifndef CF_CLI_CMD_H
#define CF_CLI_CMD_H

#include <stdbool.h>

enum { CF_EXIT_OK = 0, CF_EXIT_REFUSED = 1, CF_EXIT_USAGE = 2, CF_EXIT_CONNECT = 3 };

int cf_cmd_workflow(int argc, char **argv);   /* cmd_workflow.c */
int cf_cmd_calendar(int argc, char **argv);   /* cmd_calendar.c */

#endif
