// The single translation unit that compiles Asio, Asio's SSL layer and Beast
// (BOOST_*_SEPARATE_COMPILATION is set for every target that links tollgate_asio).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
