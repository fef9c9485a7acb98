/* cli_keygen.h - `dpool keygen [--out DIR] NAME...`. */
#ifndef CLI_KEYGEN_H
#define CLI_KEYGEN_H

/* dp_cli_keygen: argv[0] is "keygen". Writes DIR/NAME.key (0600) and
 * DIR/NAME.pub for each NAME (DIR made if missing, mode 0700). Exit
 * status: 0, 1 (a file could not be written), 2 (usage). */
int dp_cli_keygen(int argc, char **argv);

#endif
