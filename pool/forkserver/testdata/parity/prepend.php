<?php
// An auto_prepend_file: runs first, at global scope.
$prepended = 'yes, from ' . basename(__FILE__);
echo "prepend ran\n";
