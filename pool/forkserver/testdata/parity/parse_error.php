<?php
echo "never printed";
function broken( {
