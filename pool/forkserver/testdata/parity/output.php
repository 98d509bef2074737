<?php
// Every way to reach stdout and stderr, interleaved.
echo "echo\n";
print "print\n";
printf("%s\n", 'printf');
fwrite(STDOUT, "fwrite STDOUT\n");
file_put_contents('php://stdout', "php://stdout\n");
file_put_contents('php://output', "php://output\n");
fwrite(STDERR, "fwrite STDERR\n");
file_put_contents('php://stderr', "php://stderr\n");
error_log('error_log line');
trigger_error('a warning of the test', E_USER_WARNING);
echo str_repeat('x', 200000), "\n"; // more than a pipe holds
echo "end\n";
