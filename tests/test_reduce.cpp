// test_reduce
