"""Log: analysis and plots of a finished study."""
