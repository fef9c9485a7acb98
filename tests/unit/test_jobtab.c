/*
 * test_jobtab.c - common/dp_jobtab.c: the job table's data (names,
 * classes, arity, default time limits, usage lines). The kernels bound to
 * the rows are test_jobs.c's.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "dp_jobtab.h"

#define T_MAX_ARITY 64u

Test(jobtab, lookup_by_exact_name)
{
    const dp_jobtype_t *t = dp_jobtab_find("factor", 6);
    cr_assert(t);
    cr_assert_str_eq(t->name, "factor");
    /* name[0..len) need not be NUL-terminated */
    cr_assert_eq(dp_jobtab_find("factorial", 6), t);
    cr_assert_null(dp_jobtab_find("fact", 4));
    cr_assert_null(dp_jobtab_find("factorial", 9));
    cr_assert_null(dp_jobtab_find("FACTOR", 6));
    cr_assert_null(dp_jobtab_find("factor ", 7));
    cr_assert_null(dp_jobtab_find("", 0));
    cr_assert_null(dp_jobtab_find("nosuchtype", 10));
    cr_assert(dp_jobtab_find("isprime", 7));
    cr_assert(dp_jobtab_find("hash", 4));
    cr_assert(dp_jobtab_find("sleep", 5));
    cr_assert(dp_jobtab_find("echo", 4));
}

Test(jobtab, every_row_is_sane)
{
    size_t n = 0;
    const dp_jobtype_t *all = dp_jobtab_all(&n);
    cr_assert(all);
    cr_assert_geq(n, 6);
    for (size_t k = 0; k < n; k++) {
        const dp_jobtype_t *t = &all[k];
        cr_assert(t->name && t->name[0], "row %zu: no name", k);
        cr_assert(t->usage && t->usage[0], "%s: no usage", t->name);
        cr_assert_eq(strncmp(t->usage, t->name, strlen(t->name)), 0,
                     "%s: usage '%s' does not start with the name", t->name,
                     t->usage);
        cr_assert_leq(t->min_args, t->max_args, "%s: arity", t->name);
        cr_assert_leq(t->max_args, T_MAX_ARITY, "%s: arity", t->name);
        cr_assert_gt(t->timeout_ms, 0, "%s: no default time limit", t->name);
        cr_assert(t->cls == DP_CLASS_CPU || t->cls == DP_CLASS_IO,
                  "%s: class %d", t->name, (int)t->cls);
        cr_assert_eq(dp_jobtab_find(t->name, strlen(t->name)), t,
                     "%s: lookup finds another row", t->name);
        for (size_t j = 0; j < k; j++)
            cr_assert_str_neq(all[j].name, t->name, "duplicate %s", t->name);
    }
}

Test(jobtab, known_rows)
{
    const dp_jobtype_t *t = dp_jobtab_find("download", 8);
    cr_assert_eq(t->cls, DP_CLASS_IO);
    cr_assert_geq(t->max_args, 1);
    t = dp_jobtab_find("sleep", 5);
    cr_assert(t->min_args == 1 && t->max_args == 1);
    t = dp_jobtab_find("echo", 4);
    cr_assert_eq(t->min_args, 0);
    t = dp_jobtab_find("factor", 6);
    cr_assert(t->min_args == 1 && t->max_args == 1);
    cr_assert_eq(t->cls, DP_CLASS_CPU);
    cr_assert_eq(t->timeout_ms, 60000);
}

Test(jobtab, class_names)
{
    cr_assert_str_eq(dp_jobtab_class_name(DP_CLASS_CPU), "cpu");
    cr_assert_str_eq(dp_jobtab_class_name(DP_CLASS_IO), "io");
}
