/* main.c: the boltzd binary: a table of subcommands (dataset, init, eval, check, serve, user,
 * token, backup, ...). */
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "cli.h"
#ifdef BOLTZ_HAVE_CUDA
#include "gpu_probe.h"
#endif

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"serve", cli_serve, "run the daemon: HTTP API and dashboard, job queue, workers"},
    {"check", cli_check, "validate a job spec and print it with every default filled in"},
    {"dataset", cli_dataset, "build a spec's data set and write it as .npy files"},
    {"init", cli_init, "write a spec's initial weights (flat layout) as .npy"},
    {"eval", cli_eval, "evaluate U, loss, w2 and errors of given weights"},
    {"run", cli_run, "run a job without a daemon (observables, samples, checkpoints; --resume)"},
    {"summary", cli_summary, "equilibrium summary of a chain folder (JSON)"},
    {"msd", cli_msd, "mean squared displacement against wall-clock lag, diffusion coefficient (JSON)"},
    {"samples", cli_samples, "export a chain's weight samples as .npy"},
    {"user", cli_user, "add or list the daemon's users (user add NAME [--admin], user list)"},
    {"token", cli_token, "API tokens: token create NAME (printed once), token list NAME, token revoke ID"},
    {"backup", cli_backup, "online copy of the store and the job files into a new folder"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: boltzd COMMAND [options]   (boltzd COMMAND --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-9s %s\n", "version", "print the version");
}

/* Version and the backends this binary was built with (CUDA: devices found, or why none). */
static void print_version(void)
{
    printf("boltzd %s\nbackends: cpu", BOLTZ_VERSION);
#ifdef BOLTZ_HAVE_CUDA
    char why[256];
    int n = gpu_device_count(why, sizeof why);
    printf(", cuda (%s)", n > 0 ? why : why[0] ? why : "no device");
#endif
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        print_version();
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "boltzd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
