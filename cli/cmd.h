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

int cf_cmd_queue(int argc, char **argv);      /* cmd_ops.c */
int cf_cmd_show(int argc, char **argv);
int cf_cmd_history(int argc, char **argv);
int cf_cmd_document(int argc, char **argv);
int cf_cmd_timers(int argc, char **argv);
int cf_cmd_stats(int argc, char **argv);
int cf_cmd_export(int argc, char **argv);
/* export: with --member, one member's data (cmd_rights.c); else
 * cf_cmd_export. */
int cf_cmd_export_any(int argc, char **argv);
/* approve, deny, request-info, guarantee, refer-network, answer, uphold,
 * reject, settle, reject-settlement, close: argv[0] says which. */
int cf_cmd_decide(int argc, char **argv);     /* cmd_decide.c */
int cf_cmd_reconsider(int argc, char **argv);
int cf_cmd_assign(int argc, char **argv);
int cf_cmd_take(int argc, char **argv);
int cf_cmd_send(int argc, char **argv);
/* The Health Team's calls (--by, --reference): a claim, a consent. */
int cf_cmd_create(int argc, char **argv);
int cf_cmd_consent(int argc, char **argv);
int cf_cmd_watch(int argc, char **argv);      /* cmd_watch.c */
int cf_cmd_cluster(int argc, char **argv);    /* cmd_cluster.c */
int cf_cmd_backup(int argc, char **argv);     /* backup.c */
int cf_cmd_keygen(int argc, char **argv);     /* cmd_security.c */
int cf_cmd_audit(int argc, char **argv);
int cf_cmd_purge(int argc, char **argv);
int cf_cmd_representation(int argc, char **argv);   /* cmd_reps.c */

#endif
