<?php
echo "killing myself\n";
posix_kill(getmypid(), (int)($argv[1] ?? SIGKILL));
sleep(5);
