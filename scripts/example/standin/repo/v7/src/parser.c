/* v7/src/parser.c: the stand-in V7's parser. */
#include "v7.h"
static const char *skip_spaces(const char *s) { while (*s == ' ') s++; return s; }
