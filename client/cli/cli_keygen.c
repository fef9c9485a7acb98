/*
 * cli_keygen.c - `dpool keygen [--out DIR] NAME...`: CURVE key pairs for
 * the broker, clients and workers (dp_keys.h).
 */
#include "cli_keygen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "dp_keys.h"
#include "dp_opt.h"

#define S_DIR_MODE 0700

static void s_usage(FILE *f, const dp_opt_t *opts)
{
    fprintf(f, "usage: dpool keygen [--out DIR] NAME...\n"
               "Make a CURVE key pair per NAME: DIR/NAME.key (secret, mode "
               "0600: keep it\nwith its owner) and DIR/NAME.pub (public: "
               "give it to the broker,\nin --client-keys DIR or "
               "--worker-keys DIR; or, for the broker's own\nkey, to its "
               "clients and workers as --broker-key).\n\noptions:\n");
    dp_opt_help(f, opts);
}

int dp_cli_keygen(int argc, char **argv)
{
    const char *out = ".";
    bool help = false;
    const dp_opt_t opts[] = {
        {"out", 'o', NULL, DP_OPT_STR, &out, 0, 0, "DIR",
         "where the files go (.; made if missing, mode 0700)"},
        {"help", 'h', NULL, DP_OPT_HELP, &help, 0, 0, NULL, "this help"},
        {NULL, 0, NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char err[DP_KEY_ERR_MAX];
    int npos = 0;
    if (dp_opt_parse(opts, argc, argv, &npos, err, sizeof err)) {
        fprintf(stderr, "dpool keygen: %s\n", err);
        return DP_EXIT_USAGE;
    }
    if (help) {
        s_usage(stdout, opts);
        return 0;
    }
    if (npos < 1) {
        s_usage(stderr, opts);
        return DP_EXIT_USAGE;
    }
    for (int k = 1; k <= npos; k++) {
        if (!dp_keys_name_ok(argv[k])) {
            fprintf(stderr,
                    "dpool keygen: bad key name '%s': use letters, digits, "
                    "'.', '_', '-'\n",
                    argv[k]);
            return DP_EXIT_USAGE;
        }
    }
    if (mkdir(out, S_DIR_MODE) != 0 && errno != EEXIST) {
        fprintf(stderr, "dpool keygen: cannot make %s: %s\n", out,
                strerror(errno));
        return 1;
    }
    for (int k = 1; k <= npos; k++) {
        if (dp_keys_generate(out, argv[k], err, sizeof err)) {
            fprintf(stderr, "dpool keygen: %s\n", err);
            return 1;
        }
        printf("%s/%s.key %s/%s.pub\n", out, argv[k], out, argv[k]);
    }
    return 0;
}
