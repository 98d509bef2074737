<?php

/** Exec-mode test script: reads its input and exits 0 without an answer. */

declare(strict_types=1);

stream_get_contents(STDIN);
exit(0);
