<?php
// exit(N) with N from the first argument; 256+5 wraps to 5 as the kernel keeps 8 bits.
echo "before\n";
exit((int)($argv[1] ?? 3));
