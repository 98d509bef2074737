<?php
echo ini_get('memory_limit'), "\n";
$a = [];
for ($i = 0; ; $i++) {
    $a[] = str_repeat('m', 1 << 20);
}
