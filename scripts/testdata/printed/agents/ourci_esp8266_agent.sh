curl ${BLOB_URL}/${2} >test_script.sh
chmod +x test_script.sh
./test_script ${1}
