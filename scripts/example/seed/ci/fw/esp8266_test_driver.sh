curl ${BLOB_URL}/${1} >fw.tar.gz
# mend (printed: "tar ..."): the seed elides the arguments of this line and the next five; these drive the stand-in board of example/standin/rig/bin
tar xzvf fw.tar.gz
# mend (printed: "esptool.sh ..."): elided arguments
esptool.sh --port /dev/ttyUSB0 write_flash 0x00000 firmware/0x00000.bin
# mend (printed: "sleep ..."): elided arguments
sleep 1
# mend (printed: "cadaver ..."): elided arguments
cadaver -r firmware/test.rc http://192.168.4.1/
# mend (printed: "sleep ..."): elided arguments
sleep 1
# mend (printed: "curl ..."): elided arguments; a rig would ask the board for http://192.168.4.1/results, the stand-in board keeps its web root in ./esp-12e/www
curl -fsS file://$PWD/esp-12e/www/results
