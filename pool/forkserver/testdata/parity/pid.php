<?php
// getmypid() is the process's own pid (the aggregator's pid for the call).
echo getmypid(), "\n", basename(readlink('/proc/self')), "\n", posix_getpid(), "\n";
echo posix_getpgid(0) === getmypid() ? "own group\n" : "other group\n";
