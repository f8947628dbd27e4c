/* v7/src/v7.h: the stand-in V7's API. */
long v7_eval(const char *expr);
