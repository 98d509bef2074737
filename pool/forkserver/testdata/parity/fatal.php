<?php
echo "before the fatal error\n";
register_shutdown_function(static function (): void {
    $e = error_get_last();
    echo "shutdown sees: ", $e === null ? 'nothing' : $e['type'] . ' ' . $e['message'], "\n";
});
undefined_function_of_the_test();
echo "never\n";
