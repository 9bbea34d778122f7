# A password policy for rotate's generators: `rotate --key password=policy:secops-strong`.
# 32 characters from letters and digits, at least two of each kind.
length = 32
rule "charset" {
  charset   = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 2
}
rule "charset" {
  charset   = "0123456789"
  min-chars = 2
}
