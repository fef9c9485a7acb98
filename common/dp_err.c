/* dp_err.c - dp_strerror and dp_errname, generated from DP_ERR_MAP. */
#include "dpool.h"

const char *dp_strerror(int err)
{
    switch (err) {
#define DP_ERR_MSG(name, num, msg)                                             \
    case num:                                                                  \
        return msg;
        DP_ERR_MAP(DP_ERR_MSG)
#undef DP_ERR_MSG
    default:
        return "unknown error";
    }
}

const char *dp_errname(int err)
{
    switch (err) {
#define DP_ERR_NAME(name, num, msg)                                            \
    case num:                                                                  \
        return #name;
        DP_ERR_MAP(DP_ERR_NAME)
#undef DP_ERR_NAME
    default:
        return "UNKNOWN";
    }
}
