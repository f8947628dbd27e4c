curl ${BLOB_URL}/${2} >test_script.sh
chmod +x test_script.sh
# mend (printed: "./test_script ${1}"): the file the first line writes is test_script.sh
./test_script.sh ${1}
