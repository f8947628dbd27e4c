/* fw/src/main.c: the firmware's source in the stand-in tree. The esp8266
 * and POSIX builds "link" it into their images, and the board's test
 * (fw/platforms/esp8266/tests/test.js) checks for the HTTP server below. */
#include "mongoose.h"
int main(void) {
  mg_serve_http(80);
  return 0;
}
