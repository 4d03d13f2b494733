# Bash workload for scripts/test-programs.sh: subshells, command
# substitution, pipes through sort/uniq/awk/sed/tr, loops. Deterministic
# output. Run as: bash pipeline.sh
set -euo pipefail
export LC_ALL=C

gen() {
  local i
  for ((i = 1; i <= $1; i++)); do
    printf '%d %d w%d\n' "$i" $(((i * 7919) % 101)) $((i % 17))
  done
}

echo "== grouped sums"
gen 600 | sort -k2,2n -k1,1n |
  awk '{ s[$3] += $2; c[$3]++ } END { for (k in s) print k, s[k], c[k] }' |
  sort | sed 's/^w/word-/'

echo "== command substitution loop"
acc=""
for r in $(seq 1 250); do
  sq=$(echo "$r" | awk '{ print $1 * $1 }')
  top=$(printf '%s\n' alpha beta "$sq" gamma | sort -r | head -n 1)
  acc="$acc$((sq % 10))"
  if ((r % 50 == 0)); then
    echo "$r $sq $top ${#acc}"
  fi
done
echo "digits: $(echo "$acc" | fold -w 1 | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')"

echo "== subshells and text"
words=$(for i in $(seq 1 300); do echo "token$((i % 23))-$((i % 7))"; done)
echo "$words" | tr '-' ' ' | awk '{ print $2, $1 }' | sort | uniq -c | sort -k1,1nr -k2,2n -k3 | head -n 12
( cd / && echo "in subshell: $(pwd)" )
total=0
while read -r n; do
  total=$((total + n))
done < <(seq 1 500 | sed -n 's/^\([0-9]*5\)$/\1/p')
echo "sum of numbers ending in 5: $total"
echo "== md5 of a big pipeline"
gen 3000 | awk '{ print $3, $2 * 3 }' | sort | uniq | md5sum
