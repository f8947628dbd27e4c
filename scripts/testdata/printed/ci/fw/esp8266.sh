. $(dirname $0)/ourci/scripts/functions.sh


make -C fw/platforms/esp8266 -f Makefile.build OTA=${OTA}
tar cvfz fw.tar.gz -C fw/platforms/esp8266 firmware

blob_upload fw.tar.gz ${FW_BLOB}
blob_upload ci.fw.esp8266_test_driver.sh ${SCRIPT_BLOB}

spawn_task -t ourci/test/esp-12e ${FW_BLOB} ${SCRIPT_BLOB}
