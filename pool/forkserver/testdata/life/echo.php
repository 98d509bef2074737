<?php
// Echoes its stdin with its first argument before it.
echo $argv[1] ?? '', ':', stream_get_contents(STDIN);
