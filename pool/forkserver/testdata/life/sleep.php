<?php
// Prints its pid and its parent's, then sleeps (the first argument, in seconds) and says so.
echo getmypid(), ' ', posix_getppid(), "\n";
$end = microtime(true) + (float)($argv[1] ?? 60);
while (microtime(true) < $end) {
    usleep(10000);
}
echo "slept\n";
