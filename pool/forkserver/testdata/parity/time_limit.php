<?php
echo ini_get('max_execution_time'), "\n";
$t = microtime(true);
while (microtime(true) - $t < 10) {
}
echo "never\n";
