<?php
// Relative requires: from the working directory (include_path "."),
// ./ relative to it, and beside this script (PHP's last resort).
require 'lib/helper.php';
require './lib/where.php';
require 'helper.php';
echo helper(), "\n", subHelper(), "\n", getcwd(), "\n";
echo json_encode(@include 'no/such/file.php'), "\n";
