/* mongoose/mongoose.c: the stand-in Mongoose. */
#include "mongoose.h"
void mg_mgr_init(struct mg_mgr *mgr, void *user_data) { (void) mgr; (void) user_data; }
