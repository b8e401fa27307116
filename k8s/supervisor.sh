# lab's node supervisor: the first process of every container lab runs on
# Kubernetes. It runs the node's program ("$@"), waiting first until an
# uploaded program (an absolute path) is there, and leaves it down after it
# exits, as a Docker container stays exited, until lab starts it again.
# lab's kill, stop, start, pause and restart act on it through `exec`, using
# the files in /lab/run (an emptyDir: they outlive a container restart):
#   stopped  present while the node is meant to be down; made when the pod
#            first boots, so nothing runs before lab starts it (as a Docker
#            container is created, then started once its dependencies are
#            ready)
#   booted   present once the pod has booted (a restarted container keeps
#            the state it had)
#   pid      the running program's pid (also its process group: setsid)
#   paused   present while the program is frozen (SIGSTOP)
#   exit     the last exit status
# The program's files (its data directory too) stay in the container, so a
# node killed and started again keeps its data, as on Docker.
run=/lab/run
pid=
[ -e $run/booted ] || { touch $run/stopped; touch $run/booted; }
trap 'touch $run/stopped; [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait; exit 0' TERM INT
while :; do
  if [ -e $run/stopped ]; then sleep 0.1; continue; fi
  case "$1" in
    /*) if [ ! -x "$1" ]; then sleep 0.1; continue; fi ;;
  esac
  setsid "$@" &
  pid=$!
  echo "$pid" > $run/pid
  wait "$pid"
  echo "$?" > $run/exit
  touch $run/stopped
  rm -f $run/pid $run/paused
  pid=
done
