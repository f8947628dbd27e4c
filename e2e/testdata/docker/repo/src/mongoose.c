/* src/mongoose.c: a source file of the e2e seed repository. */
#include "mongoose.h"
int main(void) {
  struct mg_mgr mgr;
  mg_mgr_init(&mgr, NULL);
  return 0;
}
