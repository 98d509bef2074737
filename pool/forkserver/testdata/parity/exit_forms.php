<?php
// exit(), exit with a string, die with a string: the text is printed, the code is 0.
switch ($argv[1] ?? '') {
    case 'plain':
        echo "x";
        exit();
    case 'die':
        die('died with text');
    case 'string':
        exit("exit text\n");
    case 'return':
        return 5; // a main script's return value is not its exit code
}
