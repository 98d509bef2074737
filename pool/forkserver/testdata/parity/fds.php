<?php
// The descriptors the process has: the call's 0-3 and what it inherited,
// none of the fork server's. Left out: the script file itself, which
// php script.php keeps open while it runs (a fork does not), and the
// directory handle scandir() had open.
$out = [];
foreach (scandir('/proc/self/fd') as $fd) {
    $target = (string)@readlink("/proc/self/fd/$fd");
    if ($fd === '.' || $fd === '..' || $target === '' || $target === __FILE__) {
        continue;
    }
    $out[$fd] = preg_replace('/\[\d+\]$/', '', $target); // pipe:, socket:, anon_inode:, or a path
}
echo json_encode($out, JSON_UNESCAPED_SLASHES), "\n";
echo json_encode(array_map(static fn ($s) => stream_get_meta_data($s)['stream_type'] . ' ' . stream_get_meta_data($s)['uri'], [STDIN, STDOUT, STDERR])), "\n";
