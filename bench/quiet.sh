# Sourced by the compare scripts. As peers/run_all.sh: wait (up to 4 min) until other
# processes use < 0.1 core.
wait_quiet() {
  for _ in $(seq 120); do
    a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
    busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
    [ "$busy" -lt $((2 * $(getconf CLK_TCK) / 10)) ] && return 0
  done
  echo "warning: machine not quiet" >&2
}
