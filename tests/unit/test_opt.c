/*
 * test_opt.c - common/dp_opt.c: long and short options, --name=value,
 * positionals in any order, "--", negative numbers, --no-FLAG, ranges,
 * environment fallback (lists comma-separated), command line over env,
 * error messages and --help text.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_opt.h"
#include "dpool.h"

#define T_ERRLEN 256

static bool s_verbose, s_color, s_help;
static const char *s_name;
static dp_optlist_t s_peers;
static long s_count, s_delta;
static double s_timeout;

static const dp_opt_t s_opts[] = {
    {"verbose", 'v', "T_VERBOSE", DP_OPT_FLAG, &s_verbose, 0, 0, NULL,
     "say more"},
    {"name", 'n', "T_NAME", DP_OPT_STR, &s_name, 0, 0, "NAME", "a name"},
    {"peer", 'p', "T_PEERS", DP_OPT_LIST, &s_peers, 0, 0, "PEER",
     "a peer (repeatable)"},
    {"count", 'c', "T_COUNT", DP_OPT_LONG, &s_count, 1, 100, "N", "how many"},
    {"delta", 0, NULL, DP_OPT_LONG, &s_delta, -10, 10, "D", "signed"},
    {"timeout", 't', "T_TIMEOUT", DP_OPT_DOUBLE, &s_timeout, 0, 0, "S",
     "seconds"},
    {"color", 0, NULL, DP_OPT_FLAG, &s_color, 0, 0, NULL, NULL /* hidden */},
    {"help", 'h', NULL, DP_OPT_HELP, &s_help, 0, 0, NULL, "this text"},
    {NULL, 0, NULL, DP_OPT_FLAG, NULL, 0, 0, NULL, NULL},
};

static void s_reset(void)
{
    s_verbose = s_help = false;
    s_color = true;
    s_name = NULL;
    memset(&s_peers, 0, sizeof s_peers);
    s_count = s_delta = -999;
    s_timeout = -1;
    static const char *const vars[] = {"T_VERBOSE", "T_NAME", "T_PEERS",
                                       "T_COUNT", "T_TIMEOUT"};
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++)
        unsetenv(vars[k]);
}

TestSuite(opt, .init = s_reset);

/* s_parse: argv as a NULL-terminated list after the program name. */
#define S_ARGV(...)                                                            \
    char *argv[] = {"prog", __VA_ARGS__, NULL};                                \
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1

static char s_err[T_ERRLEN];

static int s_run(int argc, char **argv, int *npos)
{
    s_err[0] = '\0';
    return dp_opt_parse(s_opts, argc, argv, npos, s_err, sizeof s_err);
}

static void s_fails(int argc, char **argv, const char *msg)
{
    int npos;
    int rc = s_run(argc, argv, &npos);
    cr_assert_eq(rc, DP_ERR_INVALID, "rc %d for '%s'", rc, argv[1]);
    cr_assert(strstr(s_err, msg), "message '%s' lacks '%s'", s_err, msg);
}

Test(opt, long_options)
{
    S_ARGV("--verbose", "--name", "alpha", "--count", "5", "--timeout", "1.5",
           "--peer", "tcp://a:1", "--peer", "tcp://b:2", "--delta", "-3");
    int npos = -1;
    cr_assert_eq(s_run(argc, argv, &npos), 0, "%s", s_err);
    cr_assert_eq(npos, 0);
    cr_assert(s_verbose);
    cr_assert_str_eq(s_name, "alpha");
    cr_assert_eq(s_count, 5);
    cr_assert_eq(s_timeout, 1.5);
    cr_assert_eq(s_peers.n, 2);
    cr_assert_str_eq(s_peers.v[0], "tcp://a:1");
    cr_assert_str_eq(s_peers.v[1], "tcp://b:2");
    cr_assert_eq(s_delta, -3);
    cr_assert(s_color);
    cr_assert_not(s_help);
}

Test(opt, short_options)
{
    S_ARGV("-v", "-n", "beta", "-c", "100", "-p", "x", "-t", "0", "-h");
    int npos = -1;
    cr_assert_eq(s_run(argc, argv, &npos), 0, "%s", s_err);
    cr_assert_eq(npos, 0);
    cr_assert(s_verbose);
    cr_assert(s_help);
    cr_assert_str_eq(s_name, "beta");
    cr_assert_eq(s_count, 100);
    cr_assert_eq(s_timeout, 0.0);
    cr_assert(s_peers.n == 1 && !strcmp(s_peers.v[0], "x"));
}

Test(opt, name_equals_value)
{
    S_ARGV("--name=a=b", "--count=9", "--peer=p1", "--name=", "--delta=-10");
    int npos = -1;
    cr_assert_eq(s_run(argc, argv, &npos), 0, "%s", s_err);
    cr_assert_str_eq(s_name, ""); /* the last one wins */
    cr_assert_eq(s_count, 9);
    cr_assert_str_eq(s_peers.v[0], "p1");
    cr_assert_eq(s_delta, -10);
}

Test(opt, options_after_positionals)
{
    S_ARGV("factor", "--count", "3", "12", "-v", "13");
    int npos = -1;
    cr_assert_eq(s_run(argc, argv, &npos), 0, "%s", s_err);
    cr_assert_eq(npos, 3);
    cr_assert_str_eq(argv[1], "factor");
    cr_assert_str_eq(argv[2], "12");
    cr_assert_str_eq(argv[3], "13");
    cr_assert_eq(s_count, 3);
    cr_assert(s_verbose);
}

Test(opt, double_dash_ends_options)
{
    S_ARGV("-c", "4", "--", "--name", "x", "-v", "--");
    int npos = -1;
    cr_assert_eq(s_run(argc, argv, &npos), 0, "%s", s_err);
    cr_assert_eq(npos, 4);
    cr_assert_str_eq(argv[1], "--name");
    cr_assert_str_eq(argv[2], "x");
    cr_assert_str_eq(argv[3], "-v");
    cr_assert_str_eq(argv[4], "--");
    cr_assert_null(s_name);
    cr_assert_not(s_verbose);
    cr_assert_eq(s_count, 4);
}

Test(opt, negative_numbers_and_dash_are_positional)
{
    S_ARGV("-5", "-", "-0", "-v", "-12345678901234567890");
    int npos = -1;
    cr_assert_eq(s_run(argc, argv, &npos), 0, "%s", s_err);
    cr_assert_eq(npos, 4);
    cr_assert_str_eq(argv[1], "-5");
    cr_assert_str_eq(argv[2], "-");
    cr_assert_str_eq(argv[3], "-0");
    cr_assert_str_eq(argv[4], "-12345678901234567890");
    cr_assert(s_verbose);
}

Test(opt, negative_value_for_an_option)
{
    S_ARGV("--delta", "-7", "-8");
    int npos = -1;
    cr_assert_eq(s_run(argc, argv, &npos), 0, "%s", s_err);
    cr_assert_eq(s_delta, -7);
    cr_assert_eq(npos, 1);
    cr_assert_str_eq(argv[1], "-8");
}

Test(opt, no_flag)
{
    S_ARGV("--verbose", "--no-verbose", "--no-color");
    int npos = -1;
    cr_assert_eq(s_run(argc, argv, &npos), 0, "%s", s_err);
    cr_assert_not(s_verbose);
    cr_assert_not(s_color);
}

Test(opt, no_prefix_only_for_flags)
{
    S_ARGV("--no-name", "x");
    s_fails(argc, argv, "unknown option '--no-name'");
}

Test(opt, flag_takes_no_value)
{
    S_ARGV("--color=yes");
    s_fails(argc, argv, "takes no value");
}

Test(opt, missing_value)
{
    S_ARGV("--name");
    s_fails(argc, argv, "needs a value");
}

Test(opt, unknown_options)
{
    {
        S_ARGV("--bogus");
        s_fails(argc, argv, "unknown option '--bogus'");
    }
    {
        S_ARGV("-z");
        s_fails(argc, argv, "unknown option '-z'");
    }
    {
        S_ARGV("-vn", "x"); /* no bundling */
        s_fails(argc, argv, "unknown option '-vn'");
    }
    {
        S_ARGV("--verb"); /* no prefix matching */
        s_fails(argc, argv, "unknown option '--verb'");
    }
}

Test(opt, long_range_errors)
{
    static const char *const bad[] = {"0",   "101", "-1",
                                      "abc", "5x",  "",
                                      " ",   "1.5", "99999999999999999999999"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        s_count = -999;
        char *argv[] = {"prog", "--count", (char *)bad[k], NULL};
        int npos;
        int rc = s_run(3, argv, &npos);
        cr_assert_eq(rc, DP_ERR_INVALID, "'%s' accepted", bad[k]);
        cr_assert(strstr(s_err, "--count"), "message '%s'", s_err);
        cr_assert(strstr(s_err, "1 to 100"), "message '%s'", s_err);
        cr_assert_eq(s_count, -999, "'%s' stored", bad[k]);
    }
    S_ARGV("--count", "1", "--count", "100");
    int npos;
    cr_assert_eq(s_run(argc, argv, &npos), 0);
    cr_assert_eq(s_count, 100);
}

Test(opt, double_errors)
{
    static const char *const bad[] = {"-1", "x", "", "1s", "nan"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *argv[] = {"prog", "--timeout", (char *)bad[k], NULL};
        int npos;
        cr_assert_eq(s_run(3, argv, &npos), DP_ERR_INVALID, "'%s'", bad[k]);
        cr_assert(strstr(s_err, "--timeout"), "message '%s'", s_err);
    }
}

Test(opt, list_limit)
{
    char *argv[2 * DP_OPT_LIST_MAX + 4];
    int argc = 0;
    argv[argc++] = "prog";
    for (int k = 0; k <= DP_OPT_LIST_MAX; k++) {
        argv[argc++] = "-p";
        argv[argc++] = "x";
    }
    argv[argc] = NULL;
    s_fails(argc, argv, "at most");
    cr_assert_eq(s_peers.n, DP_OPT_LIST_MAX);
}

Test(opt, env_fallback)
{
    setenv("T_NAME", "from-env", 1);
    setenv("T_COUNT", "42", 1);
    setenv("T_TIMEOUT", "2.5", 1);
    setenv("T_PEERS", "tcp://a:1,tcp://b:2,,tcp://c:3", 1);
    setenv("T_VERBOSE", "1", 1);
    S_ARGV("pos");
    int npos = -1;
    cr_assert_eq(s_run(argc, argv, &npos), 0, "%s", s_err);
    cr_assert_eq(npos, 1);
    cr_assert_str_eq(s_name, "from-env");
    cr_assert_eq(s_count, 42);
    cr_assert_eq(s_timeout, 2.5);
    cr_assert(s_verbose);
    cr_assert_eq(s_peers.n, 3);
    cr_assert_str_eq(s_peers.v[0], "tcp://a:1");
    cr_assert_str_eq(s_peers.v[1], "tcp://b:2");
    cr_assert_str_eq(s_peers.v[2], "tcp://c:3");
}

Test(opt, env_flag_values)
{
    static const struct {
        const char *val;
        bool want;
    } c[] = {{"1", true},  {"yes", true},    {"true", true},
             {"0", false}, {"false", false}, {"no", false}};
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        s_verbose = !c[k].want;
        setenv("T_VERBOSE", c[k].val, 1);
        S_ARGV("x");
        int npos;
        cr_assert_eq(s_run(argc, argv, &npos), 0);
        cr_assert_eq(s_verbose, c[k].want, "T_VERBOSE=%s", c[k].val);
    }
    /* empty means unset */
    setenv("T_VERBOSE", "", 1);
    s_verbose = false;
    setenv("T_NAME", "", 1);
    S_ARGV("x");
    int npos;
    cr_assert_eq(s_run(argc, argv, &npos), 0);
    cr_assert_not(s_verbose);
    cr_assert_null(s_name);
}

Test(opt, command_line_beats_env)
{
    setenv("T_NAME", "env", 1);
    setenv("T_COUNT", "1000", 1); /* out of range, but never consulted */
    setenv("T_PEERS", "e1,e2", 1);
    setenv("T_VERBOSE", "1", 1);
    S_ARGV("--name", "cli", "-c", "7", "--peer", "c1", "--no-verbose");
    int npos;
    cr_assert_eq(s_run(argc, argv, &npos), 0, "%s", s_err);
    cr_assert_str_eq(s_name, "cli");
    cr_assert_eq(s_count, 7);
    cr_assert_eq(s_peers.n, 1);
    cr_assert_str_eq(s_peers.v[0], "c1");
    cr_assert_not(s_verbose);
}

Test(opt, env_range_error)
{
    setenv("T_COUNT", "1000", 1);
    S_ARGV("x");
    s_fails(argc, argv, "1000");
}

Test(opt, help_text)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert(f);
    dp_opt_help(f, s_opts);
    fclose(f);
    cr_assert(strstr(text, "-c, --count N"), "%s", text);
    cr_assert(strstr(text, "[env T_COUNT]"), "%s", text);
    cr_assert(strstr(text, "--delta D"), "%s", text);
    cr_assert(strstr(text, "how many"), "%s", text);
    cr_assert_null(strstr(text, "color"), "hidden option shown: %s", text);
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 7);
    free(text);
}

Test(opt, endpoints_checked)
{
    static const char *const good[] = {
        "tcp://127.0.0.1:5555", "tcp://*:5555",    "tcp://host.example:1",
        "tcp://[::1]:65535",    "tcp://0.0.0.0:*", "ipc:///tmp/x.sock",
        "ipc://@abstract"};
    static const char *const bad[] = {"127.0.0.1:5555",
                                      "tcp:/127.0.0.1:5555",
                                      "tcp://127.0.0.1:99999",
                                      "tcp://127.0.0.1:0",
                                      "tcp://127.0.0.1",
                                      "tcp://:5555",
                                      "tcp://h:55x",
                                      "ipc://",
                                      "inproc://x",
                                      "udp://h:1",
                                      "tcp://[::1:5"};
    char err[T_ERRLEN];
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++)
        cr_expect_eq(dp_opt_check_endpoint(good[k], err, sizeof err), 0,
                     "%s refused: %s", good[k], err);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        cr_expect_eq(dp_opt_check_endpoint(bad[k], err, sizeof err),
                     DP_ERR_INVALID, "%s accepted", bad[k]);
        cr_expect(strstr(err, "tcp://HOST:PORT"), "%s", err);
    }
}

static dp_optlist_t s_eps;
static const dp_opt_t s_ep_opts[] = {
    {"bind", 'b', "T_BIND", DP_OPT_LIST, &s_eps, 0, 0, "ENDPOINT", "where"},
    {NULL, 0, NULL, DP_OPT_FLAG, NULL, 0, 0, NULL, NULL},
};

Test(opt, endpoint_rows_checked)
{
    char *bad[] = {"prog", "--bind", "tcp://a:99999", NULL};
    char *good[] = {"prog", "-b", "tcp://*:5555", "-b", "ipc:///tmp/s", NULL};
    int npos;
    memset(&s_eps, 0, sizeof s_eps);
    cr_assert_eq(dp_opt_parse(s_ep_opts, 3, bad, &npos, s_err, sizeof s_err),
                 DP_ERR_INVALID);
    cr_assert(strstr(s_err, "--bind: bad endpoint 'tcp://a:99999': expected "
                            "tcp://HOST:PORT"),
              "%s", s_err);
    cr_assert_eq(dp_opt_parse(s_ep_opts, 5, good, &npos, s_err, sizeof s_err),
                 0, "%s", s_err);
    cr_assert_eq(s_eps.n, 2);
    memset(&s_eps, 0, sizeof s_eps);
    setenv("T_BIND", "tcp://a:1,a:2", 1);
    char *none[] = {"prog", NULL};
    cr_assert_eq(dp_opt_parse(s_ep_opts, 1, none, &npos, s_err, sizeof s_err),
                 DP_ERR_INVALID);
    cr_assert(strstr(s_err, "bad endpoint 'a:2'"), "%s", s_err);
    unsetenv("T_BIND");
}

static const char *s_level;
static const dp_opt_t s_lvl_opts[] = {
    {"log-level", 0, NULL, DP_OPT_STR, &s_level, 0, 0, "LEVEL", "level"},
    {NULL, 0, NULL, DP_OPT_FLAG, NULL, 0, 0, NULL, NULL},
};

Test(opt, log_level_checked)
{
    char *ok[] = {"prog", "--log-level", "debug", NULL};
    char *bad[] = {"prog", "--log-level", "verbose", NULL};
    int npos;
    cr_assert_eq(dp_opt_parse(s_lvl_opts, 3, ok, &npos, s_err, sizeof s_err), 0,
                 "%s", s_err);
    cr_assert_str_eq(s_level, "debug");
    cr_assert_eq(dp_opt_parse(s_lvl_opts, 3, bad, &npos, s_err, sizeof s_err),
                 DP_ERR_INVALID);
    cr_assert(strstr(s_err, "error, warn, info or debug"), "%s", s_err);
}

Test(opt, seen_marks_command_line_rows_only)
{
    setenv("T_NAME", "fromenv", 1);
    S_ARGV("--verbose", "x");
    bool seen[9] = {false};
    int npos;
    cr_assert_eq(
        dp_opt_parse_seen(s_opts, argc, argv, &npos, seen, s_err, sizeof s_err),
        0);
    cr_assert(seen[0]);  /* verbose */
    cr_assert(!seen[1]); /* name: from the environment */
    cr_assert_str_eq(s_name, "fromenv");
}
