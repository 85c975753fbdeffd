/* cli.h: the boltzd subcommands. Each takes (argc, argv) after the subcommand name and returns
 * the process exit status (0 ok, 1 runtime error, 2 usage error). */
#ifndef BZ_CLI_H
#define BZ_CLI_H

#include "bz_error.h"

int cli_check(int argc, char **argv);
int cli_dataset(int argc, char **argv);
int cli_init(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_summary(int argc, char **argv);
int cli_msd(int argc, char **argv);
int cli_samples(int argc, char **argv);
int cli_serve(int argc, char **argv);

/* Print "boltzd: <msg> [field: <field>]" to stderr and return 1. */
int cli_report(const bz_err *e);

/* Option parsing shared by the subcommands: --name VALUE pairs and positionals.
 * Returns 0, or 2 after printing the usage line when an option is unknown or lacks a value. */
typedef struct cli_opt {
    const char *name;   /* "--out" */
    const char **value; /* where to store the value (flags: set to "1") */
    int is_flag;
} cli_opt;
int cli_parse(int argc, char **argv, const cli_opt *opts, const char **positional, int n_positional,
              const char *usage);
/* The same with min_positional..n_positional positionals (the missing ones stay untouched). */
int cli_parse_range(int argc, char **argv, const cli_opt *opts, const char **positional, int min_positional,
                    int n_positional, const char *usage);

#endif
