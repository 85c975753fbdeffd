/* cli_util.c: option parsing and error reporting shared by the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_report(const bz_err *e)
{
    if (e->field[0] && !strstr(e->msg, e->field))
        fprintf(stderr, "boltzd: %s (field: %s)\n", e->msg, e->field);
    else
        fprintf(stderr, "boltzd: %s\n", e->msg[0] ? e->msg : bz_strerror(e->code));
    return 1;
}

static const cli_opt *find_opt(const cli_opt *opts, const char *arg)
{
    for (const cli_opt *o = opts; o && o->name; o++)
        if (!strcmp(o->name, arg)) return o;
    return NULL;
}

int cli_parse(int argc, char **argv, const cli_opt *opts, const char **positional, int n_positional,
              const char *usage)
{
    return cli_parse_range(argc, argv, opts, positional, n_positional, n_positional, usage);
}

int cli_parse_range(int argc, char **argv, const cli_opt *opts, const char **positional, int min_positional,
                    int n_positional, const char *usage)
{
    int n_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            printf("usage: %s\n", usage);
            return 3;
        }
        if (arg[0] == '-' && arg[1] == '-') {
            const cli_opt *o = find_opt(opts, arg);
            if (!o) {
                fprintf(stderr, "boltzd: unknown option '%s'\nusage: %s\n", arg, usage);
                return 2;
            }
            if (o->is_flag) {
                *o->value = "1";
            } else {
                if (i + 1 >= argc) {
                    fprintf(stderr, "boltzd: option '%s' needs a value\nusage: %s\n", arg, usage);
                    return 2;
                }
                *o->value = argv[++i];
            }
        } else {
            if (n_pos >= n_positional) {
                fprintf(stderr, "boltzd: unexpected argument '%s'\nusage: %s\n", arg, usage);
                return 2;
            }
            positional[n_pos++] = arg;
        }
    }
    if (n_pos < min_positional) {
        fprintf(stderr, "boltzd: missing argument\nusage: %s\n", usage);
        return 2;
    }
    return 0;
}
