<?php
// Leaves a process outside its process group (setsid) that holds its
// stdin, stdout and stderr, says its pid on stderr, answers and exits.
$p = proc_open(['setsid', 'sleep', '30'], [0 => STDIN, 1 => STDOUT, 2 => STDERR], $pipes);
$pid = proc_get_status($p)['pid'];
while (posix_getpgid($pid) === posix_getpgid(0)) { // until it has left the group
    usleep(1000);
}
fwrite(STDERR, "$pid\n");
echo "answer\n";
