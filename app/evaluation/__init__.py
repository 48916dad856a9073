"""Pure evaluation code: file readers and the gates, free of web and database code."""
