<?php
// Prints its pid and its parent's, then waits until the file its first
// argument names exists, and says so.
echo getmypid(), ' ', posix_getppid(), "\n";
while (!file_exists($argv[1])) {
    usleep(10000);
}
echo "released\n";
