terraform {
  # Nothing in this module needs a newer Terraform than 1.3.
  required_version = ">= 1.3"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # logging_config (JSON log format, log levels) arrived in 5.31.
      version = ">= 5.31"
    }
  }
}
