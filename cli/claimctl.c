/* claimctl: the operators' command line.  A table of commands; each command
 * parses its own options (cmd_*.c) and returns the exit code. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
    {"workflow", cf_cmd_workflow, "validate, show or draw workflow definitions"},
    {"calendar", cf_cmd_calendar, "public holidays and business-day arithmetic"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: claimctl COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(out, "  %-10s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(out, "\n'claimctl COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return CF_EXIT_USAGE;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        if (argc > 2) {
            for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
                if (strcmp(argv[2], s_commands[i].name) == 0) {
                    char help[] = "--help";
                    char *a[] = {argv[2], help, NULL};
                    return s_commands[i].run(2, a);
                }
        }
        s_usage(stdout);
        return CF_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (strcmp(argv[1], s_commands[i].name) == 0)
            return s_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "claimctl: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return CF_EXIT_USAGE;
}
