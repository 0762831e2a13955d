// test_io
