<?php

/** Exec-mode echo for the benchmarks: prints what it read on stdin. */

declare(strict_types=1);

fwrite(STDOUT, (string)stream_get_contents(STDIN));
