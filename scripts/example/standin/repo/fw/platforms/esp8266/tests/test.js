// fw/platforms/esp8266/tests/test.js: the test the board runs (the seed's
// "JS test script" that the test driver uploads with cadaver). The stand-in
// board knows one call: expect(TEXT) holds when the flashed image has TEXT.
expect("board=esp-12e");
expect("ota=@OTA@");
expect("mg_serve_http(80);");
