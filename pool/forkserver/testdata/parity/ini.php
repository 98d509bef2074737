<?php
foreach (['display_errors', 'memory_limit', 'max_execution_time', 'auto_prepend_file', 'auto_append_file', 'error_reporting', 'variables_order', 'include_path'] as $k) {
    echo $k, '=', ini_get($k), "\n";
}
echo 'prepended=', $GLOBALS['prepended'] ?? 'no', "\n";
echo 'sapi=', PHP_SAPI, ' binary=', basename(PHP_BINARY), "\n";
echo json_encode(array_values(array_filter(get_loaded_extensions()))), "\n";
