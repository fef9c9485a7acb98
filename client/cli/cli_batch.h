/*
 * cli_batch.h - `dpool submit|results|batches|cancel|forget`: detached
 * batches (cli_batch.c).
 */
#ifndef DP_CLI_BATCH_H
#define DP_CLI_BATCH_H

#include <stdbool.h>

/* dp_cli_is_batch: cmd is one of the detached-batch commands. */
bool dp_cli_is_batch(const char *cmd);
/* dp_cli_batch_argv: argv's command is one of them, options before it
 * or not (`dpool --broker EP submit ...`). */
bool dp_cli_batch_argv(int argc, char **argv);
/* dp_cli_batch: run one (argv[1] is the command); the exit code. */
int dp_cli_batch(int argc, char **argv);

#endif
