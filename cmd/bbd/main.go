// Command bbd is the command-line front of the BBD workbench.
package main

import "fmt"

func main() { fmt.Println("bbd: under construction") }
