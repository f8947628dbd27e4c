#!/bin/sh
# ci/v7.sh: the example's V7 build. Stands in for the seed's make targets with
# a tiny "difftest": evaluates expressions and checks the results.
set -eu
echo "v7: building on ${OURCI_NODE_NAME:-?} (job ${OURCI_JOB:-?})"
fails=0
for case in "1+2=3" "6*7=42" "2*(3+4)=14" "100/7=14"; do
	expr=${case%=*}
	want=${case#*=}
	got=$(($expr))
	if [ "$got" = "$want" ]; then
		echo "v7: ok   $expr = $got"
	else
		echo "v7: FAIL $expr = $got, want $want"
		fails=$((fails + 1))
	fi
done
[ "$fails" -eq 0 ]
