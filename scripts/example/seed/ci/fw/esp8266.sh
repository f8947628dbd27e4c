. $(dirname $0)/ourci/scripts/functions.sh

# mend (printed: ""): the seed elides the lines that set the two blob names used below; one pair per variant (OTA=1 or not)
FW_BLOB=fw-esp8266${OTA:+-ota}.tar.gz SCRIPT_BLOB=test-driver-esp8266${OTA:+-ota}.sh
make -C fw/platforms/esp8266 -f Makefile.build OTA=${OTA}
tar cvfz fw.tar.gz -C fw/platforms/esp8266 firmware

blob_upload fw.tar.gz ${FW_BLOB}
blob_upload ci.fw.esp8266_test_driver.sh ${SCRIPT_BLOB}

spawn_task -t ourci/test/esp-12e ${FW_BLOB} ${SCRIPT_BLOB}
