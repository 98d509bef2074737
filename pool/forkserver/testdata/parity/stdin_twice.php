<?php
// How each way of reading stdin sees the job: php://stdin twice, then STDIN.
$how = $argv[1] ?? 'wrapper';
if ($how === 'wrapper') {
    $a = file_get_contents('php://stdin');
    $b = file_get_contents('php://stdin');
    $c = stream_get_contents(STDIN);
} elseif ($how === 'constant') {
    $a = fgets(STDIN);
    $b = file_get_contents('php://stdin'); // STDIN's buffer already holds the rest
    $c = stream_get_contents(STDIN);
} else {
    $a = fread(fopen('php://stdin', 'r'), 5);
    $b = stream_get_contents(STDIN);
    $c = var_export(feof(STDIN), true);
}
echo json_encode([$a, $b, $c]), "\n";
