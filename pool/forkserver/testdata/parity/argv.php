<?php
// $argv and $_SERVER as the CLI builds them; the times only by type.
$server = $_SERVER;
$times = [gettype($server['REQUEST_TIME']), gettype($server['REQUEST_TIME_FLOAT']),
    abs($server['REQUEST_TIME_FLOAT'] - microtime(true)) < 5];
unset($server['REQUEST_TIME'], $server['REQUEST_TIME_FLOAT']);
echo json_encode([
    'argv' => $argv,
    'argc' => $argc,
    'globals_argv' => $GLOBALS['argv'],
    'server' => $server,
    'server_keys' => array_keys($_SERVER),
    'times' => $times,
    'cwd' => getcwd(),
    'env' => getenv(),
    'env_var' => getenv('PARITY_VAR'),
    'ENV' => $_ENV,
    'defined_vars' => array_keys(get_defined_vars()),
], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\n";
