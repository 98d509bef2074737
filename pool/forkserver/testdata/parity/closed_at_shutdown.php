<?php
// What PHP writes only when it closes a script's streams, after the
// shutdown functions and destructors: a deflate write filter's last block.
$out = fopen('php://stdout', 'w');
stream_filter_append($out, 'zlib.deflate', STREAM_FILTER_WRITE, ['level' => 9]);
fwrite($out, str_repeat('compressed at close ', 50));
register_shutdown_function(static fn () => print "shutdown\n");
exit(6);
